"""Floors: the cheapest DRF GET, the cheapest DRF POST that inserts one row, and a Celery
no-op task, served by the same gunicorn and workers as the product, so the product's
figures can be read as ratios to what this machine and configuration can do at all."""

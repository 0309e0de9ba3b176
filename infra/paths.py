"""Where the chatbot API lives (config/urls.py routes it). A module of its own, importing
nothing: the front door (infra/server.py), loaded by gunicorn before Django and before
config/wsgi.py sets its environment, sheds only these paths, and the admin's middleware
(infra/middleware.py) skip them."""

API_PREFIX = "/api/"

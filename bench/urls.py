"""The project's URLs plus the two floor endpoints (no API key: they are baselines)."""

from django.urls import path

from bench.floor.views import FloorGetApi, FloorInsertApi
from config import urls as project_urls

urlpatterns = [
    path("bench/floor/get/", FloorGetApi.as_view(), name="bench-floor-get"),
    path("bench/floor/insert/", FloorInsertApi.as_view(), name="bench-floor-insert"),
    *project_urls.urlpatterns,
]

handler400 = project_urls.handler400
handler403 = project_urls.handler403
handler404 = project_urls.handler404
handler500 = project_urls.handler500

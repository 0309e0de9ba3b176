from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from infra.api import api_not_found

v1 = [
    path("", include("shop.api.urls")),
    path("", include("coupons.api.urls")),
    path("", include("backoffice.api.urls")),
    path("", include("orders.api.urls")),
]

urlpatterns = [
    path("api/v1/", include((v1, "v1"), namespace="v1")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # Last under /api/: whatever matched nothing is the JSON 404, with DEBUG on as well.
    re_path(r"^api(?:/(?P<rest>.*))?$", api_not_found),
    path("admin/", admin.site.urls),
    path("admin", RedirectView.as_view(url="/admin/")),  # APPEND_SLASH is off (API bodies)
]

handler400 = "infra.api.handler400"
handler403 = "infra.api.handler403"
handler404 = "infra.api.handler404"
handler500 = "infra.api.handler500"

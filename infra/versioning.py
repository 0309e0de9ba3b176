"""API versioning. Its own module: DRF resolves DEFAULT_VERSIONING_CLASS while
rest_framework.views is still loading, so this must not import that (infra.api does)."""

from rest_framework.versioning import NamespaceVersioning


class ApiVersioning(NamespaceVersioning):
    """The version is the URL namespace (`v1`). The default matters to drf-spectacular:
    /api/schema/ lies outside the namespace, and with no default version it leaves out every
    versioned view, so the published schema had no paths at all."""

    default_version = "v1"
    allowed_versions = ("v1",)

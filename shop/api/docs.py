"""What the OpenAPI schema says about the catalogue endpoint (texts and examples), and how it
describes the chatbot's API-key authentication (shop.api.authentication)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiParameter

from infra.schema import common_errors, common_parameters, ok_response
from shop.api.serializers import ProductOut


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "shop.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer"}


PRODUCT_EXAMPLE = {
    "sku": "TM-MILKTEA-L",
    "name": "Milk tea, large",
    "store": "tea-house",
    "price": 1800,
    "currency": "CNY",
    "in_stock": True,
}

PRODUCT_LIST = {
    "operation_id": "products_list",
    "summary": "Search the catalogue",
    "description": (
        "Products by SKU, 50 a page: follow `next` (an opaque cursor URL) for more. `price` is "
        "in fen; `in_stock` says whether any unit is left right now (the worker decides under "
        "locks, so an order can still end `rejected` with `sold_out`). Filter by part of the "
        "name or SKU (`search`) and by a store's slug (`store`)."
    ),
    "parameters": [
        OpenApiParameter(
            "search",
            {"type": "string", "maxLength": 100},
            description="Part of the name or SKU.",
            examples=[OpenApiExample("tea", value="tea")],
        ),
        OpenApiParameter(
            "store",
            {"type": "string", "pattern": "^[-a-zA-Z0-9_]*$", "maxLength": 64},
            description="A store's slug.",
            examples=[OpenApiExample("tea-house", value="tea-house")],
        ),
        *common_parameters(),
    ],
    "responses": {
        200: ok_response(
            ProductOut(many=True),
            "A page of products.",
            PRODUCT_EXAMPLE,  # drf-spectacular wraps it in the page
        ),
        **common_errors(),
    },
}

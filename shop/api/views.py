from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import StrictCursorPagination, parse
from config.schema import ERRORS
from shop import selectors
from shop.api.serializers import ProductListIn, ProductOut
from shop.models import Product


class BySkuPagination(StrictCursorPagination):
    ordering = "sku"
    page_size = 50


class ProductListApi(ListAPIView):
    serializer_class = ProductOut
    pagination_class = BySkuPagination

    @extend_schema(
        parameters=[
            OpenApiParameter("search", str, description="Part of the name or SKU."),
            OpenApiParameter("store", str, description="A store's slug."),
        ],
        responses={200: ProductOut(many=True), **ERRORS},
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Product]:
        query = parse(ProductListIn, self.request.query_params.dict())
        return selectors.product_list(search=query.get("search", ""), store=query.get("store", ""))

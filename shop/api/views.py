from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from infra.api import StrictCursorPagination, livemode, parse
from shop import selectors
from shop.api import docs
from shop.api.serializers import ProductListIn, ProductOut
from shop.models import Product


class BySkuPagination(StrictCursorPagination):
    ordering = "sku"
    page_size = 50


class ProductListApi(ListAPIView):
    serializer_class = ProductOut
    pagination_class = BySkuPagination

    @extend_schema(**docs.PRODUCT_LIST)
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Product]:
        query = parse(ProductListIn, self.request.query_params.dict())
        return selectors.product_list(
            search=query.get("search", ""),
            store=query.get("store", ""),
            livemode=livemode(self.request),
        )

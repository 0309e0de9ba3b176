from rest_framework import serializers

from shop.models import Product


class ProductOut(serializers.ModelSerializer):
    store = serializers.CharField(source="store.slug")
    in_stock = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["sku", "name", "store", "price", "currency", "in_stock"]
        read_only_fields = fields  # an answer: every field is always there (and required)

    def get_in_stock(self, product: Product) -> bool:
        return product.stock > 0


class ProductListIn(serializers.Serializer):
    search = serializers.CharField(required=False, max_length=100, allow_blank=True)
    store = serializers.SlugField(required=False, max_length=64, allow_blank=True)
    cursor = serializers.CharField(required=False)

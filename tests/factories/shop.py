import factory

from shop.models import ApiClient, Product, Store


class StoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Store
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"store-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    name = factory.LazyAttribute(lambda o: f"Product {o.sku}")
    store = factory.SubFactory(StoreFactory)
    price = 1800
    stock = 100
    stock_total = factory.LazyAttribute(lambda o: o.stock)


class ApiClientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiClient

    name = factory.Sequence(lambda n: f"chatbot-{n}")
    webhook_secret = factory.Sequence(lambda n: f"whsec-{n:032d}")

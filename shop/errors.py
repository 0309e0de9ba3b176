from infra.errors import DomainError


class OutOfStock(DomainError):
    code = "out_of_stock"
    status = 409
    default_detail = "Not enough stock."


class ProductSoldOut(DomainError):
    code = "sold_out"
    status = 410
    default_detail = "This product is sold out."

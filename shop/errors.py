from config.errors import DomainError


class OutOfStock(DomainError):
    code = "out_of_stock"
    status = 409
    default_detail = "Not enough stock."

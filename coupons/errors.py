from infra.errors import DomainError


class CampaignNotActive(DomainError):
    code = "campaign_not_active"
    status = 409
    default_detail = "The campaign is not taking claims or orders now."


class SoldOut(DomainError):
    code = "sold_out"
    status = 410
    default_detail = "All coupons of this campaign have been issued."


class LimitReached(DomainError):
    code = "limit_reached"
    status = 409
    default_detail = "The customer already holds as many coupons of this campaign as allowed."


class BudgetExhausted(DomainError):
    code = "budget_exhausted"
    status = 409
    default_detail = "The campaign's budget is spent."


class CouponNotHeld(DomainError):
    """A coupon was not in the state a hold move needs: a bug or a lost race."""

    code = "coupon_in_use"
    status = 409


class BudgetNotSpent(DomainError):
    """A refund would give back more budget than the campaign has spent: a bug, refused."""

    code = "budget_not_spent"
    status = 409
    default_detail = "The campaign has not spent that much budget."

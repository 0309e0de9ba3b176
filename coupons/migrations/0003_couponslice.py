import django.db.models.deletion
from django.db import migrations, models

# At commit, every campaign's slice caps must sum to its coupons_total: checked for each
# campaign whose total or slices changed (and each new campaign, so a campaign cannot be
# created without its slices). Claims change only `issued`, which fires nothing.
SUM_CHECK = """
CREATE FUNCTION coupon_slices_sum_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cid bigint;
    total bigint;
    caps numeric;
BEGIN
    IF TG_TABLE_NAME = 'coupons_campaign' THEN
        cid := NEW.id;
    ELSIF TG_OP = 'DELETE' THEN
        cid := OLD.campaign_id;
    ELSE
        cid := NEW.campaign_id;
    END IF;
    SELECT coupons_total INTO total FROM coupons_campaign WHERE id = cid;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(sum(cap), 0) INTO caps FROM coupons_couponslice WHERE campaign_id = cid;
    IF caps <> total THEN
        RAISE EXCEPTION 'campaign %: coupon slice caps sum to %, coupons_total is %',
            cid, caps, total
            USING ERRCODE = 'check_violation', CONSTRAINT = 'coupon_slices_sum_to_total';
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER coupon_slices_sum_to_total
    AFTER INSERT OR UPDATE OF cap OR DELETE ON coupons_couponslice
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION coupon_slices_sum_check();
CREATE CONSTRAINT TRIGGER coupon_total_sum_of_slices
    AFTER INSERT OR UPDATE OF coupons_total ON coupons_campaign
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION coupon_slices_sum_check();
"""

SUM_CHECK_DROP = """
DROP TRIGGER coupon_total_sum_of_slices ON coupons_campaign;
DROP TRIGGER coupon_slices_sum_to_total ON coupons_couponslice;
DROP FUNCTION coupon_slices_sum_check();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("coupons", "0002_backlog_ceiling"),
    ]

    operations = [
        migrations.CreateModel(
            name="CouponSlice",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("number", models.PositiveSmallIntegerField()),
                ("issued", models.BigIntegerField(default=0)),
                ("cap", models.BigIntegerField()),
                (
                    "campaign",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="slices",
                        to="coupons.campaign",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("campaign", "number"), name="coupon_slice_number"),
                    models.CheckConstraint(
                        condition=models.Q(("issued__lte", models.F("cap"))),
                        name="coupon_slice_within_cap",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("issued__gte", 0)), name="coupon_slice_issued_positive"
                    ),
                ],
            },
        ),
        migrations.RunSQL(SUM_CHECK, SUM_CHECK_DROP),
    ]

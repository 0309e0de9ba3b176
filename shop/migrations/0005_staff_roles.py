"""The two staff roles of the admin, as groups: "campaign viewer" sees every campaign, order,
queue and audit page and changes nothing; "campaign operator" also uses the controls (pause and
resume, limits, replay, cancel, refund). API clients and keys are for superusers only, whatever
a group holds (shop.admin.SuperuserOnly), so neither group gets their permissions.

Staff accounts still need "staff status" to log in; a superuser puts them in a group.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEWER = "campaign viewer"
OPERATOR = "campaign operator"

VIEWED = {
    "shop": ["store", "product", "ratelimit", "ratelimitchange", "auditentry"],
    "coupons": ["campaign", "campaignevent", "coupon"],
    "orders": ["order", "orderline", "orderevent", "reservation", "payment", "callbackdelivery"],
}
# The controls check these (see shop.admin, coupons.admin, orders.admin, orders.dashboard).
CONTROLS = [
    ("coupons", "change_campaign"),
    ("orders", "change_order"),
    ("shop", "add_ratelimit"),
    ("shop", "change_ratelimit"),
]


def _permissions(apps, pairs):
    Permission = apps.get_model("auth", "Permission")
    found = []
    for app_label, codename in pairs:
        found.append(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return found


def create_roles(apps, schema_editor):
    # On a fresh database permissions are only made after every migration (post_migrate):
    # make them now so the groups can hold them.
    for app_config in apps.get_app_configs():
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = True  # create_permissions skips apps without models
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = models_module
    Group = apps.get_model("auth", "Group")
    viewed = [(app, f"view_{model}") for app, models in VIEWED.items() for model in models]
    viewer, _ = Group.objects.get_or_create(name=VIEWER)
    viewer.permissions.set(_permissions(apps, viewed))
    operator, _ = Group.objects.get_or_create(name=OPERATOR)
    operator.permissions.set(_permissions(apps, viewed + CONTROLS))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=[VIEWER, OPERATOR]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("shop", "0004_admin_indexes"),
        ("coupons", "0002_backlog_ceiling"),
        ("orders", "0002_parking_and_parked_payments"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]

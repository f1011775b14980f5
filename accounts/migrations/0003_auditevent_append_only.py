from django.db import migrations

from portal.db import append_only


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_organizations")]

    operations = [append_only("accounts_auditevent", nullable_on_delete=("actor_id", "organization_id"))]

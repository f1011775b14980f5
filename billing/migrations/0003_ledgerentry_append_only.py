from django.db import migrations

from portal.db import append_only


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_ledger_upgrades")]

    # No column may change: the organization and operator are PROTECTed, so no ON DELETE SET NULL ever touches a row.
    operations = [append_only("billing_ledgerentry")]

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("proxy", "0008_exchange_request_id"),
    ]

    operations = [
        migrations.AddField(
            model_name="provider",
            name="quirks",
            field=models.JSONField(blank=True, default=list),
        ),
    ]

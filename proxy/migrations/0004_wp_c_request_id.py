from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("proxy", "0003_exchange_orjson_fields"),
    ]

    operations = [
        migrations.AddField(
            model_name="exchange",
            name="request_id",
            field=models.CharField(blank=True, db_index=True, default="", max_length=40),
        ),
    ]

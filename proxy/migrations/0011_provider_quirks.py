from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("proxy", "0010_rollups"),
    ]

    operations = [
        migrations.AddField(
            model_name="provider",
            name="quirks",
            field=models.JSONField(blank=True, default=list),
        ),
    ]

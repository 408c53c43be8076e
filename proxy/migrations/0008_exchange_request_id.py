from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("proxy", "0007_blobs_retention"),
    ]

    operations = [
        migrations.AddField(
            model_name="exchange",
            name="request_id",
            field=models.CharField(blank=True, db_index=True, default="", max_length=40),
        ),
    ]

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("proxy", "0008_exchange_request_id"),
    ]

    operations = [
        migrations.AddField(
            model_name="provider",
            name="heal_tool_calls",
            field=models.BooleanField(default=True),
        ),
        migrations.AddField(
            model_name="provider",
            name="tool_call_retries",
            field=models.PositiveSmallIntegerField(default=1),
        ),
        migrations.AddField(
            model_name="rule",
            name="heal_tool_calls",
            field=models.BooleanField(blank=True, default=None, null=True),
        ),
        migrations.AddField(
            model_name="rule",
            name="tool_call_retries",
            field=models.PositiveSmallIntegerField(blank=True, default=None, null=True),
        ),
    ]

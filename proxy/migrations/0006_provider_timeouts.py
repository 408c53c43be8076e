"""A provider's four limits on one attempt: connect, first byte, idle between chunks, total.

read_timeout was httpx's read timeout, the longest wait for any chunk: the idle timeout under its name,
so it is renamed and keeps its value (existing providers keep behaving as before); new ones get 120 s.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("proxy", "0005_tool_results_origin")]

    operations = [
        migrations.RenameField("provider", "read_timeout", "idle_timeout"),
        migrations.AlterField("provider", "idle_timeout", models.FloatField(default=120.0)),
        migrations.AddField("provider", "first_byte_timeout", models.FloatField(default=300.0)),
        migrations.AddField("provider", "total_timeout", models.FloatField(default=0.0)),
    ]

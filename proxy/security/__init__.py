"""Who may ask: allowed hosts and origins, the dashboard login, client keys, secrets encrypted at rest
and redacted everywhere."""

"""Microsoft Entra's own view of provisioning: its provisioning logs and the job's status."""

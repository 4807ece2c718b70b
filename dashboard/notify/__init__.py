"""Who is told what, when, and how it reaches them: rules, emails, the outbox, SMTP."""

"""Who is asking and what they did: users, passwords, API tokens, browser sessions, the audit log."""

"""cmi5 (quartz): course structures, launch records and the LMS's statement rules, pure (no I/O)."""

"""cronctl: the admin command-line client of crontrio."""

"""What the dispatcher, executor, monitor and cronctl share."""

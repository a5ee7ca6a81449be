"""The call lifecycle: starting, ringing, joining, media, chat, reports and ending calls."""

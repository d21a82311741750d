"""Platform adapters: they translate between a chat platform and the bot core, nothing more."""

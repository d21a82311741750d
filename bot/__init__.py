"""moodgif bot: chat text -> emotion -> ranked GIFs -> preview -> feedback."""

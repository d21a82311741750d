"""moodgif scorer: GIF bytes -> frames -> features -> 17 emotion scores."""

"""moodgif training: comparisons -> Bradley-Terry scores -> trained heads -> model versions."""

"""Data files of the bot package (the intent lexicon); a package so wheels include them."""

"""dreamer_model: the Dreamer 4 tokenizer, world model and agent, trained from dreamer_data stores."""

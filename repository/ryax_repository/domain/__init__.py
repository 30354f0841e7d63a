"""Domain of the repository service: dataclasses and rules, standard library only."""

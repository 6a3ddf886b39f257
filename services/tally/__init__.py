"""tally: the runtime's demo service. Folds demo.trades into per-symbol totals → demo.tallies."""

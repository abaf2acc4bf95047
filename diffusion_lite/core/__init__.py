"""The mathematics of the forward and reverse processes: schedules, q, the reverse-step mean and variance, parameterisations and the ELBO (chapters 02-05)."""

"""Estimators that models use: importance-weighted log-likelihoods (IWAE) and Langevin samplers.

They sit on the ground floor because models call them (a VAE's ``estimate_log_prob``, a score model's
``sample``); the training objectives in ``ppgen.inference`` build on them too.
"""

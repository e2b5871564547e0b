/* lib/metrics.c: placeholder until written */

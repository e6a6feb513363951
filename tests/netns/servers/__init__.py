"""Real servers for the probe tests: certificates made at test time, a process serving
every HTTP behaviour the probes must judge, and Debian's nginx from a tmp config."""

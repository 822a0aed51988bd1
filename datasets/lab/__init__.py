"""The interference lab: real workloads run alone and co-located in cgroups, labelled with P."""

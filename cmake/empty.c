/* An empty translation unit for a module that has no sources yet. */
typedef int imc_empty_unit;

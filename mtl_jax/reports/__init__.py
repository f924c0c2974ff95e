"""Reports over runs and sweeps (`python -m mtl_jax.report`): the runs found and checked
(`runs`), grouped into settings (`settings`), their scores (`scores`), the summary table
(`table`), figures (`plots`), sample grids (`samples`, also drawn into TensorBoard during
training), depth error by distance over the eval split (`distance`) and the page (`html`), put
together by `build.write_report`.
"""

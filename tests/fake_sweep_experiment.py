"""The source of an experiment file whose sweep is three seeds of one run
(no real config: the sweep tests pair it with a fake main)."""

import textwrap

SOURCE = textwrap.dedent("""\
    def get_config(arg=None):
      raise NotImplementedError

    def sweep(seeds=(0, 1, 2)):
      return [{"name": f"run_s{s}", "config_arg": "", "overrides": {"seed": s}}
              for s in seeds]
    """)

"""First-party modelyard plugins, each declared in the ``modelyard`` entry-point group like any third-party one."""

"""The application floor: the `ppgen` command, jobs and run directories, the comparison and its report,
and figures. It uses the floors below (``ppgen`` core, ``ppgen.models``, ``ppgen.inference``); nothing
below imports it."""

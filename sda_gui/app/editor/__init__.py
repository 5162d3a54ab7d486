"""The parts of the observation editor (``grid_editor.GridEditor`` puts them together).

- ``view``: the painted image (truth or ``A(truth)`` under the pattern), its axes and
  colour bar, the time and channel row of 2-D fields, and the mouse (left-drag paints);
- ``operator_box``: *Observe through* — directly, block means or every n-th point;
- ``tools``: the paint tools and the pattern generators (random, regular, copy in time);
- ``observations``: noise σ and seed, *Generate from truth*, save and load of files;
- ``hover``: the status line that names the cell under the mouse and its values.
"""

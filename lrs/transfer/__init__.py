"""Moving data between LRSs: ``lrs export`` and ``lrs import`` (the files and the remote LRS
records move through; the rules are the use cases' in ``lrs.usecases.transfer``) and the
``lrs forward`` rules (delivered by the pipeline's forward sink, ``sinks.forward``)."""


from .. import offline  # noqa: F401  the command line registers the offline models, tasks and corpus

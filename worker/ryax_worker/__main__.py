import os

# Before grpc is imported: the worker forks only to exec (action sandboxes, fork servers), and
# grpc's fork handlers, on by default in grpcio 1.85, then run in every such child. Under
# uvloop, whose spawn is a fork() rather than Python's vfork(), they restarted grpc's
# event-engine threads in the child, which was killed by SIGSEGV before its exec.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from .app import main  # after the setting above

if __name__ == "__main__":
    main()

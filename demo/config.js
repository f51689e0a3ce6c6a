// Where the API lives. demo/serve.py answers this file itself with the --api it was given.
export const API_BASE = "http://localhost:8000/api";

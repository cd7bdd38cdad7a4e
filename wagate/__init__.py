"""wagate: a WhatsApp gateway for Google Cloud's serverless parts.

The core package: `domain` (pure rules), `ports` (interfaces), `adapters` (one vendor each),
`contracts` (wire models), `errors` + `http` (one error model), `config` (settings).
"""

__version__ = "0.1.0"

"""Test tooling shared by the suites: service and message helpers, fakes for what cannot run
here (TensorRT), the dashboard renderer and the Firefox WebDriver BiDi driver."""

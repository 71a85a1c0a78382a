import { Navigate } from "react-router-dom";

import { landingPage } from "./landing";
import { useMe } from "./me";

export function Landing() {
  const me = useMe();
  if (!me.data) return null;
  return <Navigate to={landingPage(me.data.roles, me.data.permissions)} replace />;
}

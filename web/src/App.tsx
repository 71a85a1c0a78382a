import { Spin } from "antd";
import { lazy, Suspense, useEffect, useState } from "react";
import { Navigate, Route, Routes, useLocation, useNavigate } from "react-router-dom";

import { session } from "./api/session";
import { Landing } from "./shell/Landing";
import { SignIn } from "./pages/SignIn";

// Pages load on first visit, the shell too: the sign-in page stays small.
const Shell = lazy(() => import("./shell/Shell"));
const Dashboard = lazy(() => import("./pages/Dashboard"));
const MyDay = lazy(() => import("./pages/MyDay"));
const Customers = lazy(() => import("./pages/Customers"));
const CustomerPage = lazy(() => import("./pages/CustomerPage"));
const CustomerForm = lazy(() => import("./pages/CustomerForm"));
const FollowUpForm = lazy(() => import("./pages/FollowUpForm"));
const Board = lazy(() => import("./pages/Board"));
const Leads = lazy(() => import("./pages/Leads"));
const Approvals = lazy(() => import("./pages/Approvals"));
const Receivables = lazy(() => import("./pages/Receivables"));
const OrderLookup = lazy(() => import("./pages/OrderLookup"));
const SyncStatus = lazy(() => import("./pages/SyncStatus"));
const NotFound = lazy(() => import("./pages/NotFound"));

type State = "checking" | "in" | "out";

export function App() {
  const [state, setState] = useState<State>(session.accessToken ? "in" : "checking");
  const navigate = useNavigate();
  const location = useLocation();

  useEffect(() => {
    // A reload: the access token is gone from memory; the session cookie may bring a new one.
    if (state === "checking") void session.validToken().then((token) => setState(token ? "in" : "out"));
    return session.onChange((signedIn) => setState(signedIn ? "in" : "out"));
  }, [state]);

  useEffect(() => {
    if (state === "out" && location.pathname !== "/sign-in") {
      const next = location.pathname + location.search;
      navigate(`/sign-in${next === "/" ? "" : `?next=${encodeURIComponent(next)}`}`, { replace: true });
    }
  }, [state, location, navigate]);

  if (state === "checking") return <FullPageSpin />;
  return (
    <Suspense fallback={<FullPageSpin />}>
      <Routes>
        <Route path="/sign-in" element={state === "in" ? <Navigate to="/" replace /> : <SignIn />} />
        {state === "in" && (
          <Route element={<Shell />}>
            <Route index element={<Landing />} />
            <Route path="dashboard" element={<Dashboard />} />
            <Route path="my-day" element={<MyDay />} />
            <Route path="customers" element={<Customers />} />
            <Route path="customers/new" element={<CustomerForm />} />
            <Route path="customers/:customerId" element={<CustomerPage />} />
            <Route path="customers/:customerId/edit" element={<CustomerForm />} />
            <Route path="customers/:customerId/follow-up" element={<FollowUpForm />} />
            <Route path="leads" element={<Leads />} />
            <Route path="opportunities" element={<Board />} />
            <Route path="approvals" element={<Approvals />} />
            <Route path="receivables" element={<Receivables />} />
            <Route path="order-lookup" element={<OrderLookup />} />
            <Route path="sync" element={<SyncStatus />} />
            <Route path="*" element={<NotFound />} />
          </Route>
        )}
      </Routes>
    </Suspense>
  );
}

function FullPageSpin() {
  return (
    <div style={{ display: "grid", placeItems: "center", minHeight: "100vh" }}>
      <Spin size="large" />
    </div>
  );
}
